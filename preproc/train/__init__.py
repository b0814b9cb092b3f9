"""Training of the project's own text super-resolution model (``text-sr``).

Small modules, one job each:

* :mod:`.corpus` - fonts and words from Debian packages, random line text;
* :mod:`.render` - a text line rendered as ink coverage at the HR size;
* :mod:`.degrade` - the appearance and degradation model (HR target -> LR input);
* :mod:`.data` - deterministic batches of (LR, HR) patch pairs for a seed;
* :mod:`.model` - the compact net, its initialisation, fp16 weight files;
* :mod:`.loss` - L1 plus an edge (image-gradient) term;
* :mod:`.validate` - Tesseract CER on a fixed subset of the development set;
* :mod:`.loop` - the training loop with progress, checkpoints and validation.
"""
