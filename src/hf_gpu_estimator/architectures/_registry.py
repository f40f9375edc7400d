"""What a family is: how one ``model_type``'s config becomes an Architecture and exact counts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hf_gpu_estimator.architectures._fields import Fields, Head, Tally
from hf_gpu_estimator.spec import Architecture

#: A dropout field and transformers' config default for it.
DropoutField = tuple[str, float]


#: ``Family.dropouts`` of a model without dropout (the recurrent families: no attention probabilities).
NO_DROPOUT: tuple[DropoutField, DropoutField, DropoutField] = (("", 0.0), ("", 0.0), ("", 0.0))


@dataclass(frozen=True, kw_only=True)
class Family:
    """Every fact about one model type that is not a config value.

    Attributes:
        analyze: ``(fields, model_type, head) -> (Architecture, Tally)``: dimensions, layers and
            parameters by role, following ``configuration_<family>.py`` defaults and the module
            tree of ``modeling_<family>.py``.
        default_class: the transformers class counted when ``architectures`` names none we know.
        classes: transformers class name -> which head it carries.
        dropouts: the config fields (and defaults) of the embedding, residual and attention-probability
            dropouts; an empty name means the model has no such dropout.
        native_softmax: eager attention runs softmax in the scores' dtype (no ``dtype=torch.float32``).
        supports_sdpa: the model class's ``_supports_sdpa`` (False: transformers runs eager for "sdpa").
        module: where the facts live, for the coverage table.
    """

    analyze: Callable[[Fields, str, Head], tuple[Architecture, Tally]]
    default_class: str
    classes: Mapping[str, Head]
    dropouts: tuple[DropoutField, DropoutField, DropoutField] = (("", 0.0), ("", 0.0), ("attention_dropout", 0.0))
    native_softmax: bool = False
    supports_sdpa: bool = True
    module: str = ""
