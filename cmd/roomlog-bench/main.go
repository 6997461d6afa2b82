// Command roomlog-bench is the load generator of roomlog's benchmarks
// (docs/benchmarks.md, testenv/bench/). It opens N WebSocket connections over
// K server endpoints, joins them to M rooms, has P of them publish at a total
// rate R for a duration T after a warm-up, and measures publish→deliver
// latency, deliveries per second, the servers' CPU and RSS, and correctness
// (lost, duplicated and out-of-order deliveries per room).
//
// It speaks three protocols: roomlog's own, Centrifugo's JSON protocol and
// Socket.IO v5 over Engine.IO v4 (WebSocket transport only), the last one
// against the Socket.IO peer and against a relay's /socket.io/ alike.
//
// Usage:
//
//	roomlog-bench run    [flags]   coordinator: starts --procs worker processes, merges their results
//	roomlog-bench worker [flags]   one shard of the connections (started by run)
//	roomlog-bench report [flags]   reads result JSON files, writes docs/benchmarks.md and the plots
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCoordinator(os.Args[2:])
	case "worker":
		err = runWorker(os.Args[2:])
	case "report":
		err = runReport(os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "roomlog-bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `Usage:
  roomlog-bench run    [flags]  run a load test (coordinator; --procs worker processes)
  roomlog-bench report [flags]  write the Markdown report and plots from result files
Run "roomlog-bench run --help" for the flags.
`)
}
