"""The LOL dataset: fetched and verified against the manifest, paired and split, read as images and
fed to training through tf.data.
"""
