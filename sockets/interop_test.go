package sockets

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"appnet/internal/testnet"
)

// The course's own client, in Python: one sentence over TCP, one reply.
const pythonTCPClient = `
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((host, int(port)))
s.sendall((sys.argv[2] + "\n").encode())
reply = b""
while not reply.endswith(b"\n"):
    chunk = s.recv(1024)
    if not chunk:
        break
    reply += chunk
print("From server:", reply.decode().rstrip("\n"))
s.close()
`

// The course's UDP server, in Python: answers each datagram in upper case.
const pythonUDPServer = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    message, client = s.recvfrom(2048)
    s.sendto(message.decode().upper().encode(), client)
`

// Python's socket programs and our servers and clients understand each
// other, in both directions.
func TestInteropPython(t *testing.T) {
	python := testnet.NeedTool(t, "python3")
	addr := startTCP(t, &TCPServer{})
	out, err := exec.Command(python, "-c", pythonTCPClient, addr, "hello from python").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "From server: HELLO FROM PYTHON" {
		t.Errorf("python TCP client: %v: %q", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, python, "-c", pythonUDPServer)
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	port, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("python UDP server: %v", err)
	}
	var cl Client
	got, err := cl.UDP(ctx, "127.0.0.1:"+strings.TrimSpace(port), "hello python server")
	if err != nil || got != "HELLO PYTHON SERVER" {
		t.Errorf("our UDP client against python's server: %q, %v", got, err)
	}
}

// socat, a general-purpose relay, talks to our servers as a plain TCP and
// UDP client.
func TestInteropSocat(t *testing.T) {
	socat := testnet.NeedTool(t, "socat")
	taddr := startTCP(t, &TCPServer{})
	uaddr := startUDP(t, &UDPServer{})
	for _, tc := range []struct{ target, in, want string }{
		{"TCP:" + taddr, "one\ntwo\n", "ONE\nTWO\n"},
		{"UDP:" + uaddr, "datagram", "DATAGRAM"},
	} {
		cmd := exec.Command(socat, "-t", "2", "-T", "5", "-", tc.target)
		cmd.Stdin = strings.NewReader(tc.in)
		out, err := cmd.Output()
		if err != nil || string(out) != tc.want {
			t.Errorf("socat %s: %v: %q, want %q", tc.target, err, out, tc.want)
		}
	}
}
