module dualstack_ipam/benchmarks/go

go 1.19
