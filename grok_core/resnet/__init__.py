"""ResNet-18 on the polygon-sum images (paper Figs. 6-7), one module per concern: the run's config, the image
set (polygons), its device-side pipeline (data), the network (model), training (train) and moving a checkpoint
between machines (shards). `grok resnet` trains a run; grokking verdicts are in grok_core.analysis.
"""
