"""Image and text encoders (CLIP, DINO, ResNet) built on transformers or plain PyTorch."""
