// Package lab runs a small Internet on one machine: the hosts of a lab file
// (TOML), each an address in 127.0.0.0/8 running appnet services, with the
// embedded default (default.toml) when no file is given.
//
// A lab file has one table per host and one sub-table per service:
//
//	[host.upper1]
//	address = "127.0.0.21"
//
//	[host.upper1.uppercase]
//	tcp = 12000
//	udp = 12000
//
// Parse refuses a file with an error, naming the file, the line and the
// reason. Start runs every service, Check probes each once as a client
// would (what `appnet lab --check` prints), and Shutdown stops them all.
//
// Ports: services are configured with their standard ports. When the
// process may not bind ports below 1024, each of those is moved up by
// PrivilegedOffset (10000): DNS's 53 becomes 10053. Ports from 1024 up are
// used as they are.
//
// Each subsystem adds its kinds of service with Register, in a file of this
// package named after the kind, and adds hosts to default.toml.
package lab
