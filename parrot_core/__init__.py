"""Parrot learning core: flow prior, encoders, SAC, datasets, ONNX export.

Nothing in this package imports ROS or PyBullet; torch is imported only by the
modules that train (the ONNX runtime loader works without it).
"""

__version__ = "0.1.0"
