"""Configuration errors: chat templates, tokenizers, trainer arguments and config files.

Part of the signature catalogue (see `crashsight.diagnostics.catalogue`): data only. A
configuration error fails the same way on every record and every rerun, so it is a root cause of
its own (``config/*``), never a flake: the hint says what to change, not to retry.
"""

from __future__ import annotations

from ..models import Signature

__all__ = ["SIGNATURES"]

# fmt: off
SIGNATURES: tuple[Signature, ...] = (
    Signature(
        id="transformers.no_chat_template", category="config", subcategory="chat_template",
        pattern=r"Cannot use chat template functions because tokenizer\.chat_template is not set",
        literals=("Cannot use chat template functions",),
        description="apply_chat_template was called on a tokenizer without a chat template (a base model's tokenizer).",
        hint="Use the instruct/chat model's tokenizer, or pass chat_template= (or set tokenizer.chat_template) explicitly.",
        source="Hugging Face transformers src/transformers/tokenization_utils_base.py get_chat_template (>= 4.43, when the default ChatML template was removed)",
        samples=(
            "ValueError: Cannot use chat template functions because tokenizer.chat_template is not set and no template argument was passed! For information about writing templates and setting the tokenizer.chat_template attribute, please see the documentation at https://huggingface.co/docs/transformers/main/en/chat_templating",
        ),
    ),
    Signature(
        id="jinja.template_error", category="config", subcategory="chat_template",
        pattern=r"jinja2\.exceptions\.(?P<kind>TemplateError|TemplateSyntaxError|UndefinedError): (?P<detail>.*)",
        literals=("jinja2.exceptions.",),
        description="The chat template rejected the conversation (raise_exception in the template) or is not valid Jinja.",
        hint="Check the messages against the template's rules (roles that must alternate, a system role it does not support) or fix the template.",
        source="jinja2 src/jinja2/exceptions.py; the message comes from the model's chat template, e.g. Mistral/Llama-2 templates' raise_exception('Conversation roles must alternate user/assistant/user/assistant/...'), rendered by transformers' apply_chat_template",
        samples=(
            "jinja2.exceptions.TemplateError: Conversation roles must alternate user/assistant/user/assistant/...",
            "jinja2.exceptions.TemplateError: System role not supported",
            "jinja2.exceptions.TemplateSyntaxError: unexpected '}'",
        ),
    ),
    Signature(
        id="transformers.no_pad_token", category="config", subcategory="tokenizer",
        pattern=r"Asking to pad but the tokenizer does not have a padding token",
        literals=("Asking to pad but the tokenizer",),
        description="Batches are padded with a tokenizer that has no pad token (Llama, Mistral and Qwen tokenizers ship without one).",
        hint="Set tokenizer.pad_token = tokenizer.eos_token (or add a pad token and resize the embeddings) before building batches.",
        source="Hugging Face transformers src/transformers/tokenization_utils_base.py _get_padding_truncation_strategies",
        samples=(
            "ValueError: Asking to pad but the tokenizer does not have a padding token. Please select a token to use as `pad_token` `(tokenizer.pad_token = tokenizer.eos_token e.g.)` or add a new pad token via `tokenizer.add_special_tokens({'pad_token': '[PAD]'})`.",
        ),
    ),
    Signature(
        id="tokenizers.untagged_enum", category="config", subcategory="tokenizer",
        pattern=r"data did not match any variant of untagged enum (?P<what>\w+)",
        literals=("did not match any variant of untagged enum",),
        description="tokenizer.json was written by a newer tokenizers library than the one installed, which cannot parse it.",
        hint="Upgrade tokenizers (and transformers) to the versions the model was saved with.",
        source="Hugging Face tokenizers (serde's untagged-enum error from tokenizers/src/tokenizer/serialization.rs); huggingface/tokenizers#1553",
        samples=(
            "Exception: data did not match any variant of untagged enum ModelWrapper at line 250373 column 3",
            "Exception: data did not match any variant of untagged enum PyPreTokenizerTypeWrapper at line 78 column 3",
        ),
    ),
    Signature(
        id="transformers.unknown_model_type", category="config", subcategory="model",
        pattern=r"has model type `?(?P<model_type>[\w.-]+)`? but Transformers does not recognize this architecture",
        literals=("but Transformers does not recognize this architecture",),
        description="The checkpoint's config.json names a model type this transformers version does not know.",
        hint="Upgrade transformers to a version that has the architecture, or pass trust_remote_code=True for a custom one.",
        source="Hugging Face transformers src/transformers/models/auto/configuration_auto.py AutoConfig.from_pretrained",
        samples=(
            "ValueError: The checkpoint you are trying to load has model type `qwen3_5` but Transformers does not recognize this architecture. This could be because of an issue with the checkpoint, or because your version of Transformers is out of date.",
        ),
    ),
    Signature(
        id="transformers.strategy_mismatch", category="config", subcategory="arguments",
        pattern=r"load_best_model_at_end`? requires the save and eval strategy to match",
        literals=("requires the save and eval strategy to match",),
        description="TrainingArguments: load_best_model_at_end needs evaluation and saving on the same schedule.",
        hint="Set eval_strategy and save_strategy to the same value (and save_steps a multiple of eval_steps).",
        source="Hugging Face transformers src/transformers/training_args.py TrainingArguments.__post_init__",
        samples=(
            "ValueError: --load_best_model_at_end requires the save and eval strategy to match, but found",
        ),
    ),
    Signature(
        id="python.unexpected_argument", category="config", subcategory="arguments",
        pattern=r"(?P<callee>\w*(?:Arguments|Args|Config|Trainer|Settings))\.__init__\(\) got an unexpected keyword argument '(?P<argument>\w+)'",
        literals=(".__init__() got an unexpected keyword argument",),
        description="A trainer, its arguments or a config class was given a keyword it does not take (often one renamed in a newer release).",
        hint="Check the argument's name against the installed version (transformers renamed evaluation_strategy to eval_strategy; trl's trainers take processing_class, not tokenizer).",
        source="CPython's TypeError for unknown keywords (Python/ceval.c); renames in transformers 4.46 (evaluation_strategy) and trl 0.12 (tokenizer -> processing_class)",
        samples=(
            "TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'evaluation_strategy'",
            "TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'tokenizer'",
            "TypeError: SFTConfig.__init__() got an unexpected keyword argument 'max_seq_length'",
        ),
    ),
    Signature(
        id="omegaconf.missing_value", category="config", subcategory="missing_key",
        pattern=r"MissingMandatoryValue: Missing mandatory value: (?P<key>\S+)",
        literals=("Missing mandatory value: ",),
        description="A configuration value marked ??? (mandatory) was read before anyone set it.",
        hint="Set the key in the config file or on the command line (key=value).",
        source="omegaconf omegaconf/errors.py MissingMandatoryValue, raised by omegaconf/basecontainer.py (OmegaConf 2.x, Hydra)",
        samples=(
            "omegaconf.errors.MissingMandatoryValue: Missing mandatory value: node.waldo",
            "omegaconf.errors.MissingMandatoryValue: Missing mandatory value: data.module.data_root_dir",
        ),
    ),
    Signature(
        id="omegaconf.not_in_struct", category="config", subcategory="unknown_key",
        pattern=r"(?:ConfigAttributeError|ConfigKeyError): Key '(?P<key>[^']+)' (?:is not in struct|not in '\w+')",
        literals=("ConfigAttributeError: Key '", "ConfigKeyError: Key '"),
        description="The code or an override used a configuration key the (struct) config does not define: a typo or a renamed key.",
        hint="Check the key's spelling against the config schema; add new keys with +key=value in Hydra.",
        source="omegaconf omegaconf/errors.py ConfigAttributeError/ConfigKeyError, raised for struct configs (OmegaConf 2.x, Hydra)",
        samples=(
            "omegaconf.errors.ConfigAttributeError: Key 'lr' is not in struct",
            "omegaconf.errors.ConfigKeyError: Key 'batchsize' not in 'TrainConfig'",
        ),
    ),
    Signature(
        id="hydra.override", category="config", subcategory="override",
        pattern=r"Could not override '(?P<key>[^']+)'|MissingConfigException: .*Could not find '(?P<option>[^']+)'",
        literals=("Could not override '", "Could not find '"),
        description="A Hydra command-line override names a key or a config option that does not exist.",
        hint="Use +key=value to add a key, check the option's name in the config group's folder.",
        source="Hydra hydra/_internal/config_loader_impl.py (ConfigCompositionException, MissingConfigException), Hydra 1.x",
        samples=(
            "hydra.errors.ConfigCompositionException: Could not override 'trainer.max_step'.",
            "hydra.errors.MissingConfigException: In 'config': Could not find 'model/llama4'",
        ),
    ),
    Signature(
        id="pydantic.settings_invalid", category="config", subcategory="invalid_value",
        pattern=r"(?P<count>\d+) validation errors? for (?P<model>\w*(?:Settings|Config|Configuration|Args|Arguments))\b",
        literals=("validation error for ", "validation errors for "),
        description="A settings or config model (pydantic) rejected the configuration it was given.",
        hint="The lines after it name each field and what was wrong; fix the config file or environment variables they come from.",
        source="pydantic-core's ValidationError title '{count} validation error(s) for {title}' (pydantic 2, pydantic-settings BaseSettings)",
        samples=(
            "pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings",
            "pydantic_core._pydantic_core.ValidationError: 2 validation errors for TrainConfig",
        ),
    ),
)
# fmt: on
