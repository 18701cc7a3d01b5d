package bencode_test

import (
	"crypto/sha1"
	"fmt"
	"log"

	"appnet/p2p/bencode"
)

func ExampleMarshal() {
	type peer struct {
		IP   string `bencode:"ip"`
		Port int    `bencode:"port"`
		ID   []byte `bencode:"peer id,omitempty"`
	}
	b, err := bencode.Marshal(map[string]any{
		"interval": 1800,
		"peers":    []peer{{IP: "127.0.0.2", Port: 6881}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", b)
	// Output: d8:intervali1800e5:peersld2:ip9:127.0.0.24:porti6881eeee
}

func ExampleRawMessage() {
	// Some real torrents have unsorted keys; the info hash must be taken
	// over the bytes as they are.
	data := []byte("d4:infod4:name1:x6:lengthi5eee")
	var m struct {
		Info bencode.RawMessage `bencode:"info"`
	}
	opts := bencode.DecodeOptions{AllowUnsortedKeys: true}
	if err := opts.Unmarshal(data, &m); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n%x\n", m.Info, sha1.Sum(m.Info))
	// Output:
	// d4:name1:x6:lengthi5ee
	// 5e4eff02136f5aa63b7065ed6bb02ca0cbf1afda
}

func ExampleUnmarshal() {
	var v any
	err := bencode.Unmarshal([]byte("d3:cow3:moo4:spaml1:a1:bee"), &v)
	fmt.Println(v, err)
	err = bencode.Unmarshal([]byte("i03e"), &v)
	fmt.Println(err)
	// Output:
	// map[cow:moo spam:[a b]] <nil>
	// bencode: syntax error at offset 1: leading zero in integer
}
