"""Reads a folder of TensorBoard runs with TensorBoard's own event accumulator (an independent
reader of the event files headstart writes) and prints every run's scalars as JSON:
{run: {tag: [[step, value], ...]}}.

Usage: python tensorboard_read.py DIR"""
import json, os, sys

from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

mux = EventMultiplexer(size_guidance={"scalars": 0})  # 0: keep every point
mux.AddRunsFromDirectory(sys.argv[1])
mux.Reload()
out = {}
for run, tags in mux.Runs().items():
    out[run] = {tag: [[e.step, e.value] for e in mux.Scalars(run, tag)] for tag in tags["scalars"]}
print(json.dumps(out))
