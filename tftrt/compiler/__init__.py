"""The compiler: load+freeze, IR, passes, lowering, codegen, save/load."""
