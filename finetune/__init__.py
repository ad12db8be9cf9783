"""finetune: base-model acquisition, LoRA training, fuse and GGUF export on mlx-lm."""
