"""Compute kernels under the SAE variants: the CPU top-k (numba), the counting sort by latent, and the
sparse products with hand-written gradients that TopK training runs on."""
