"""rmpl_jax: multimedia event extraction with vision-language models in JAX/Flax."""
