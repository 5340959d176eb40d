"""Code shared by the container programs (each image ships the whole `containers` package)."""
