"""Extraction as plain functions: inventory, plan, and one chunk of work.

The orchestration layers call these; they never import Prefect or Dask, so a
Dask worker running :func:`~emotion.extract.chunk.extract_audio_chunk` needs only this package.

1. :func:`~emotion.extract.inventory.take_inventory` lists the clips under a data root and validates
   their ids. Given the previous run's manifest (``known``), a clip whose
   listing fingerprint (size and modification time, or ETag) is unchanged
   keeps its recorded content hash and is not read; a new or changed clip is
   left unhashed, for the worker that processes it. Without ``known``
   (``--verify``) every clip is read and hashed here. Files that fail here
   become rejects.
2. :func:`~emotion.extract.plan.plan_extraction` compares the inventory with the rows already in the
   store: clips whose ``(path, content_hash)`` is stored are skipped, the rest
   (and every clip of unknown hash) are processed, and rows of deleted or
   changed clips are marked stale.
3. :func:`~emotion.extract.chunk.extract_chunk` reads a chunk of clips, hashes each one, computes
   features (unless the hash shows the stored row is still current) and
   writes one Parquet part; bad clips come back as rejects, and every clip
   read comes back with its hash.
4. :func:`~emotion.extract.inventory.manifest_frame` records every clip with its fingerprint, hash and
   outcome, for the next run's inventory.

The audio step reads ``.wav``, ``.flac`` and the audio track of ``.mp4``
clips. A clip without audio is not a reject: video-only clips (modality 02,
whose track is silent) are set aside at inventory without decoding, and an
mp4 whose track is missing or silent is set aside at decoding; both are
listed as ``no_audio`` with a reason, and their frames are extracted as usual.
"""
