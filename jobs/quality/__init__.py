"""Quality of a partition: its statistics, drift against the reference and the previous partition, the gate, and the stats table."""
