"""Figure builders and widget demos, one module per topic (``start``, ``sensing``, ``flows``,
``dln``, ``rwkv``). They import the topic's maths module and the shared ``plots``/``widgets``
layers; nothing imports them back."""
