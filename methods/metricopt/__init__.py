"""MetricOpt (Huang et al., CVPR 2021): the registered methods (`method`), the value function and its
Reptile meta-training (`value_function`), trajectories (`trajectories`), one finetuning step
(`step`), Guided ES (`guided_es`) and the learned update rule (`learned_update`)."""
