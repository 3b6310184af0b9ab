"""Using a trained model: the fused fast path, tiling for any photo size, photo I/O, the enhance
command, serving payloads.
"""
