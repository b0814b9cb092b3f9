"""Training of the project's own text super-resolution model (``text-sr``).

Small modules, one job each:

* :mod:`.corpus` - fonts and words from Debian packages, random line text;
* :mod:`.render` - a text line rendered as ink coverage at the HR size;
* :mod:`.degrade` - the appearance and degradation model (HR target -> LR input);
* :mod:`.data` - deterministic batches of (LR, HR) patch pairs for a seed (generator v2:
  whole lines with their text);
* :mod:`.crnn` - the small CRNN line recognizer (CTC) used as a frozen text prior;
* :mod:`.model` - the compact net, its initialisation, fp16 weight files;
* :mod:`.loss` - L1 plus an edge (image-gradient) term (the CTC term is in :mod:`.crnn`);
* :mod:`.validate` - the selection/report split of the development set and Tesseract
  CER on a fixed subset of its selection lines;
* :mod:`.paired` - paired CER comparison of two variants from compare caches;
* :mod:`.steps` - the training loop both models share: LR schedule, progress, periodic
  validation, best weights kept, checkpoints and ``log.jsonl``;
* :mod:`.loop` - the text-sr training (its data, loss and CER validation) on that loop;
* :mod:`.face_data`, :mod:`.face_loop` - the ``face-sr`` model: identity split, aligned HR
  faces, degraded batches, and its training with an identity loss through dlib's ResNet.
"""
