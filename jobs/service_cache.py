"""A cache-bound service: model shards that keep the models they loaded, and calls routed to them by key.

Each replica of `Shard` keeps an LRU of CACHE_SIZE models; a call for a model it
holds takes CALL_S, one it must load first takes LOAD_S more. With MODELS models
over REPLICAS replicas, hash routing gives each replica its own models (all hits
once loaded), random routing shows every replica every model (mostly misses):

    raysched submit jobs/service_cache.py                 # hash (the default)
    raysched submit jobs/service_cache.py --policy random
    raysched analyze results/service_cache-*.csv          # throughput, hit rate, load per replica

Environment knobs: SERVICE_CALLS (default 2000), SERVICE_MODELS (40), SERVICE_REPLICAS (4).
"""

import collections
import os
import time

import raysched

CALLS = int(os.environ.get("SERVICE_CALLS", "2000"))
MODELS = int(os.environ.get("SERVICE_MODELS", "40"))
REPLICAS = int(os.environ.get("SERVICE_REPLICAS", "4"))
CACHE_SIZE = 12  # models one replica keeps
CALL_S = 0.01  # a call for a model in the cache
LOAD_S = 0.1  # loading a model that is not


@raysched.service(num_cpus=1, replicas=REPLICAS)
class Shard:
    def __init__(self):
        self.models = collections.OrderedDict()

    def predict(self, model_id, x):
        hit = model_id in self.models
        if hit:
            self.models.move_to_end(model_id)
        else:
            time.sleep(LOAD_S)
            self.models[model_id] = f"weights of {model_id}"
            if len(self.models) > CACHE_SIZE:
                self.models.popitem(last=False)
        time.sleep(CALL_S)
        return {"items": 1, "cache_hit": int(hit)}


def tasks():
    for i in range(CALLS):
        model = f"model-{i % MODELS}"
        yield raysched.Task(Shard.predict, args=(model, i), key=model)
