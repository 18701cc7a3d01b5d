package queue

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ControlRequest is one command on the control socket: op is "list",
// "flush" or "delete"; IDs name messages (flush: none means all).
type ControlRequest struct {
	Op  string   `json:"op"`
	IDs []string `json:"ids,omitempty"`
}

// ControlReply answers a ControlRequest.
type ControlReply struct {
	Error string `json:"error,omitempty"`
	N     int    `json:"n"`              // messages flushed or deleted
	List  []Info `json:"list,omitempty"` // for list
	// Running is false when no server held the queue and the command
	// ran on the directory itself.
	Running bool `json:"running"`
}

// ServeControl answers control requests on DIR/control.sock (mode 0600:
// only the queue's owner may use it) until ctx ends. One JSON request
// per connection, one JSON reply.
func (q *Queue) ServeControl(ctx context.Context) error {
	p := filepath.Join(q.cfg.Dir, ControlName)
	os.Remove(p) // a stale socket from a killed server; we hold the lock
	ln, err := net.Listen("unix", p)
	if err != nil {
		return fmt.Errorf("queue: control socket: %w", err)
	}
	os.Chmod(p, 0o600)
	go func() { <-ctx.Done(); ln.Close() }()
	defer os.Remove(p)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("queue: control socket: %w", err)
		}
		go q.control(ctx, c)
	}
}

func (q *Queue) control(ctx context.Context, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var req ControlRequest
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		json.NewEncoder(c).Encode(ControlReply{Error: "bad request: " + err.Error(), Running: true})
		return
	}
	rep := q.do(ctx, req)
	rep.Running = true
	json.NewEncoder(c).Encode(rep)
}

func (q *Queue) do(ctx context.Context, req ControlRequest) ControlReply {
	switch req.Op {
	case "list":
		return ControlReply{List: q.List()}
	case "flush":
		return ControlReply{N: q.Flush(req.IDs...)}
	case "delete":
		n, err := q.Delete(ctx, req.IDs...)
		if err != nil {
			return ControlReply{Error: err.Error()}
		}
		return ControlReply{N: n}
	}
	return ControlReply{Error: fmt.Sprintf("unknown operation %q", req.Op)}
}

// Control runs req on the queue in dir: through the control socket of
// the server running on it, or, when none is, on the directory itself
// (then "flush" changes nothing: mail is tried when a server starts).
func Control(ctx context.Context, dir string, req ControlRequest) (ControlReply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", filepath.Join(dir, ControlName))
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := json.NewEncoder(c).Encode(req); err != nil {
			return ControlReply{}, fmt.Errorf("queue: control: %w", err)
		}
		var rep ControlReply
		if err := json.NewDecoder(c).Decode(&rep); err != nil {
			return ControlReply{}, fmt.Errorf("queue: control: %w", err)
		}
		if rep.Error != "" {
			return rep, fmt.Errorf("queue: %s", rep.Error)
		}
		return rep, nil
	}
	if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
		return ControlReply{}, fmt.Errorf("queue: control: %w", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, logDirName)); serr != nil {
		return ControlReply{}, fmt.Errorf("queue: no queue in %s", dir)
	}
	q, err := Open(Config{Dir: dir})
	if err != nil {
		return ControlReply{}, err
	}
	defer q.Close()
	rep := q.do(ctx, req)
	if rep.Error != "" {
		return rep, fmt.Errorf("queue: %s", rep.Error)
	}
	if req.Op == "flush" {
		rep.N = 0
	}
	return rep, nil
}
