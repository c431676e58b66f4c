"""Infrastructure that knows nothing of GANs: atomic files and caches, run locks, fetching files
on first use, and the processes of a distributed run."""
