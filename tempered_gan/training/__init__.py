"""Training one run: the machine and random streams, the objects a run is made of, the trainer's
step, the loop with its samples, evaluations and checkpoints, CUDA graphs, run folders and logs."""
