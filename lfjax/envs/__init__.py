"""Evaluation environments that lfjax defines itself: maze2d on gymnasium-robotics' PointMaze
physics with D4RL's task (`maze2d`, gymnasium ids lfjax/maze2d-<maze>-v0). The locomotion
environments are gymnasium's own (HalfCheetah-v5, Hopper-v5, Walker2d-v5); `lfjax.data`'s
registry builds whichever a dataset needs.
"""
