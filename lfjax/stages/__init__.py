"""The stages of a CNF run as library functions, in the order a run meets them:

    loaded = stages.dataset.prepare_dataset("maze2d-umaze", generate_if_missing=True)
    pretrained = stages.flow.load_or_pretrain(config, loaded, flow_dir)   # reuse or train + save
    results = stages.agent.train_agent(config, loaded, pretrained, workdir)

`stages.resume` says whether a resume still has the dataset and the flow a run's checkpoints
were trained from. Each takes a ``log`` callable for its messages and writes only what it owns (a generated
dataset, the flow directory, the run's orbax checkpoints); result files are the caller's
(`report=`). In a multi-process job (`lfjax.processes`) every process calls them with the same
arguments.
"""

from lfjax.stages import agent, dataset, flow, resume

__all__ = ["agent", "dataset", "flow", "resume"]
