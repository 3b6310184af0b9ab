"""Scoring a trained model at full resolution beside baselines (PSNR, SSIM, gamma, CLAHE, TV), and
the figures.
"""
