"""The networks (DCE-Net, Zero-DCE++, the denoiser, the exposure gate), their zero-reference
losses, and loading saved models.
"""
