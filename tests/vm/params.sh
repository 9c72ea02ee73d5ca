# What the VM test runs, shared by the host runner and the guest (copied into the initramfs).
# A small model: under TCG the guest's own CPU work (tokenizing, building graphs, copying
# inputs) is what is slow, not the host backend.
VM_MODEL_ARGS="--type f16 --embd 128 --layers 2 --ff 256 --heads 4 --heads-kv 2 --ctx 4096"
VM_PROMPT="Once upon a time, there was a little girl who"
VM_TOKENS=16
# the kill test: a generation that cannot finish in time, killed after as long as the short
# generation took, and at least this many seconds
VM_KILL_TOKENS=3000
VM_KILL_CTX=4096 # room for them: at 135 tok/s (seen) 400 tokens finished before the kill
VM_KILL_AFTER_S=2
