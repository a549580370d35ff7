"""Kumar et al.'s polynomial regression (grokking as the lazy-to-rich transition), one module per concern:
the run's config (config), the Gaussian data (data), the one-hidden-layer network and its NTK (model), the
kernel and lazy-limit measures (measures), and batched full-batch GD into its own run store (train).
"""
