"""DCGAN image generation with honest sample-quality metrics."""
