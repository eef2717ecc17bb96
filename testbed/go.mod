module watchtrace/testbed

go 1.27
