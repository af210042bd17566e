"""segcore: finding and counting cosmic-ray hits in X-ray detector frames.

Modules:

- ``io``: reading frames and masks (PNG, TIFF, NPY, detector files), writing masks; ``formats``: detector
  file formats (EDF, CBF, HDF5/NeXus stacks) and frame addresses; ``errors``: the one error type
- ``preprocess``: the network's input recipes, display scaling
- ``synth``: simulated detector frames with exact masks (the demo data)
- ``data``: the dataset layout (split folders), frame/mask pairs in it, ``tf.data`` pipelines
- ``model``: DeepLabV3+ (ResNet50 or tiny backbone), backbone weights, save and load
- ``losses``, ``training_metrics``, ``listeners``, ``precision``, ``trainer``: training and its parts;
  ``multiworker``: training on several workers (TF_CONFIG), only the chief writing
- ``tiles``: overlapping tiles whose interiors partition a frame
- ``inference_graph``: a trained model rewritten for prediction (logits first, batch norms folded, precision)
- ``inference``: prediction: a model file loaded to predict, the cosmic probability of every pixel, masks
- ``metrics``: segmentation scores and cosmic counting; ``curves``: precision-recall and ROC curves
- ``evaluator``: scoring a model or detector on a split, results tables; ``overlays``: pictures of a result
- ``classical``: LA Cosmic, a detector that needs no training
- ``hotpixels``: hot pixels of a set of frames from one detector, never taken for cosmics
- ``components``: accepting or rejecting a proposed mask cosmic by cosmic
- ``postprocess``: growing a predicted mask, cleaning the frame under it
- ``outputs``: where predict, lacosmic and clean write each frame's files; ``cluster``: the same spread over a
  Dask cluster's workers (``--dask``), resumable
- ``__main__``: the command line; run ``python -m segcore --help``
"""

__version__ = "0.1.0"
