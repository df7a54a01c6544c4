"""Speed and memory benchmarks, ratios measured in one run: the losses (``contextloss bench-losses``), the
topology metrics (``contextloss bench-metrics``) and the paper's Table 7 on a GPU (``contextloss bench-gpu``)."""
