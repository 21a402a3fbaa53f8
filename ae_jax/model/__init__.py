"""The autoencoders: Keras-compatible conv layers and the AE/VAE modules."""
