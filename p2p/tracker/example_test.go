package tracker_test

import (
	"context"
	"fmt"
	"net"

	"appnet/p2p/tracker"
)

// A tracker on loopback, over HTTP and UDP, and two peers that find each
// other through it.
func Example() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	srv := &tracker.Server{}
	go srv.Serve(ln)
	go srv.ServeUDP(pc)
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	ih, _ := tracker.ParseHash("0123456789abcdef0123456789abcdef01234567")
	seeder := tracker.Request{InfoHash: ih, PeerID: tracker.Hash([]byte("-AN0001-000000000001")), Port: 6881, Left: 0, Event: tracker.Started}
	leecher := tracker.Request{InfoHash: ih, PeerID: tracker.Hash([]byte("-AN0001-000000000002")), Port: 6882, Left: 1 << 20, Event: tracker.Started}

	var c tracker.Client
	if _, err := c.Announce(ctx, "http://"+ln.Addr().String()+"/announce", seeder); err != nil {
		fmt.Println(err)
		return
	}
	resp, err := c.Announce(ctx, "udp://"+pc.LocalAddr().String(), leecher)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d seeder, %d leecher; peers: %v\n", resp.Complete, resp.Incomplete, resp.Peers[0].Addr)
	stats, _ := c.Scrape(ctx, "http://"+ln.Addr().String()+"/announce", ih)
	fmt.Printf("scrape: %+v\n", stats[ih])
	// Output:
	// 1 seeder, 1 leecher; peers: 127.0.0.1:6881
	// scrape: {Complete:1 Downloaded:0 Incomplete:1}
}
