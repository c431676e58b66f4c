"""The method of the paper: the GAN losses and the lens's objective (:mod:`.losses`, the paper's
equations), the lens and λ's schedules (:mod:`.lens`), the tempering of D's real input
(:mod:`.tempering`), the nets (:mod:`.nets`) and the ways a tempering ends (:mod:`.exits`)."""
