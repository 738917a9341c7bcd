"""Aggregation functions, one class per file, all following ``Aggregator``'s contract.

| class | function | reversible | bounded memory |
| --- | --- | --- | --- |
| Count | count | yes | yes |
| Sum | sum | yes | yes |
| Mean | mean | yes | yes |
| Min, Max | min, max | no | yes |
| DistinctCount | distinct_count | no | no |
| Last | last | no | yes |
"""

from skewless.transforms.aggregations.base import Aggregator, OrderKey
from skewless.transforms.aggregations.count import Count
from skewless.transforms.aggregations.distinct_count import DistinctCount
from skewless.transforms.aggregations.extremum import Max, Min
from skewless.transforms.aggregations.last import Last
from skewless.transforms.aggregations.mean import Mean
from skewless.transforms.aggregations.sum import Sum

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "Count",
    "DistinctCount",
    "Last",
    "Max",
    "Mean",
    "Min",
    "OrderKey",
    "Sum",
]

#: Function name → class, for every function a definition may name.
AGGREGATORS: dict[str, type[Aggregator]] = {
    cls.function: cls for cls in (Count, Sum, Mean, Min, Max, DistinctCount, Last)
}
