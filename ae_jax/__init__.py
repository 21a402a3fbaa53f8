"""ae_jax: latent-space study of convolutional autoencoders in JAX/Flax."""
