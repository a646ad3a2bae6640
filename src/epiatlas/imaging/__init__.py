"""Chest X-ray imaging: manifest and decoding, phantoms, classifier training and inference, Grad-CAM summaries.

Conventions shared by every module: an image is a float32 tensor [1, H, W] (batches [N, 1, H, W]) with values
in [0, 1], 0 = black (air) and 1 = white (bone), whatever the file's photometric interpretation; lung and
lesion masks are bool/uint8 arrays of the same H x W; class indices follow `CLASSES`.
"""

CLASSES: tuple[str, ...] = ("normal", "bacterial", "viral", "covid19")
