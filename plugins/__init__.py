"""The plugins shipped with qfexbot, installed as the package ``qfexbot_plugins`` and found by
name through the ``qfexbot.plugins`` entry points (rebalancer, balance_logger, book_imbalance,
demo_trader). In a checkout the runtime also finds them here through ``plugin_dirs``."""
