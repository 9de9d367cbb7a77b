"""Production review: the calibrated probability that a task is right, the threshold whose
precision is guaranteed, and (to come) routing, release and audits."""
