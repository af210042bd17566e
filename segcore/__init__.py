"""segcore: finding and counting cosmic-ray hits in X-ray detector frames.

Modules: io (frames and masks), preprocess, synth (demo data), data (pairing and
tf.data), model (DeepLabV3+), metrics, trainer, evaluator. Run
``python -m segcore --help`` for the command line.
"""

__version__ = "0.1.0"
