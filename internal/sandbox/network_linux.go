package sandbox

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// The sandbox's network namespace has only lo. Every IPv4 and IPv6 address
// is made local (a "local 0.0.0.0/0 dev lo" route and its IPv6 twin), so a
// connect to any address arrives on loopback, where the DNS responder and
// the sinkhole listen. Nothing can leave: there is no other interface.

// setupLoopback brings lo up and makes every address local. It runs in the
// sandbox init, inside the new network namespace.
func setupLoopback() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for lo: %w", err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("read lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := addLocalRoute(unix.AF_INET, lo.Index); err != nil {
		return fmt.Errorf("route every IPv4 address to lo: %w", err)
	}
	if err := addLocalRoute(unix.AF_INET6, lo.Index); err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
		return fmt.Errorf("route every IPv6 address to lo: %w", err)
	}
	return nil
}

// addLocalRoute adds "local <any>/0 dev lo table local" over rtnetlink.
func addLocalRoute(family, ifindex int) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	const hdr = unix.SizeofNlMsghdr + unix.SizeofRtMsg
	msg := make([]byte, hdr+8)
	binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.LittleEndian.PutUint16(msg[4:], unix.RTM_NEWROUTE)
	binary.LittleEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	binary.LittleEndian.PutUint32(msg[8:], 1)
	rt := (*unix.RtMsg)(unsafe.Pointer(&msg[unix.SizeofNlMsghdr]))
	rt.Family = uint8(family)
	rt.Table = unix.RT_TABLE_LOCAL
	rt.Protocol = unix.RTPROT_BOOT
	rt.Scope = unix.RT_SCOPE_HOST
	rt.Type = unix.RTN_LOCAL
	// RTA_OIF
	binary.LittleEndian.PutUint16(msg[hdr:], 8)
	binary.LittleEndian.PutUint16(msg[hdr+2:], unix.RTA_OIF)
	binary.LittleEndian.PutUint32(msg[hdr+4:], uint32(ifindex))
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	if n >= unix.SizeofNlMsghdr+4 && binary.LittleEndian.Uint16(buf[4:]) == unix.NLMSG_ERROR {
		if code := int32(binary.LittleEndian.Uint32(buf[unix.SizeofNlMsghdr:])); code != 0 {
			return unix.Errno(-code)
		}
	}
	return nil
}

// inNetns runs fn on a thread that has joined the network namespace nsPath;
// sockets created by fn stay in that namespace.
func inNetns(nsPath string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(self)
		target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open the sandbox network namespace: %w", err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("join the sandbox network namespace: %w", err)
			return
		}
		err = fn()
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and dies with this goroutine
		errc <- err
	}()
	return <-errc
}

// network is the supervisor's side: the DNS responder, the sinkhole
// listeners and the names handed out.
type network struct {
	nsPath string
	emit   func(Event)
	since  func() time.Duration

	mu      sync.Mutex
	byName  map[string]netip.Addr
	byAddr  map[netip.Addr]string
	next    uint32
	closers map[string]io.Closer // "tcp/3333" -> sinkhole listener
	closed  bool
	wg      sync.WaitGroup
	conns   chan struct{} // semaphore of sinkhole connections being read
}

// sinkholeBase is where handed-out addresses start (198.18.0.0/15, the
// benchmarking range, never routed on the internet).
var sinkholeBase = netip.MustParseAddr("198.18.0.1")

func newNetwork(nsPath string, emit func(Event), since func() time.Duration) *network {
	return &network{nsPath: nsPath, emit: emit, since: since, byName: map[string]netip.Addr{}, byAddr: map[netip.Addr]string{},
		closers: map[string]io.Closer{}, conns: make(chan struct{}, maxSinkholeConns)}
}

// addressFor hands out one sinkhole address per name.
func (n *network) addressFor(name string) netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if a, ok := n.byName[name]; ok {
		return a
	}
	b := sinkholeBase.As4()
	v := binary.BigEndian.Uint32(b[:]) + n.next
	if n.next < 1<<17-2 {
		n.next++
	}
	binary.BigEndian.PutUint32(b[:], v)
	a := netip.AddrFrom4(b)
	n.byName[name] = a
	n.byAddr[a] = name
	return a
}

func (n *network) nameOf(a netip.Addr) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.byAddr[a.Unmap()]
}

// start opens the DNS responder on port 53 (UDP and TCP).
func (n *network) start() error {
	return inNetns(n.nsPath, func() error {
		// One UDP socket per family, so each answer leaves from the address
		// the query was sent to (a client that asked 8.8.8.8 only accepts
		// an answer from 8.8.8.8).
		pc4, err := net.ListenPacket("udp4", "0.0.0.0:53")
		if err != nil {
			return fmt.Errorf("DNS responder: %w", err)
		}
		p4 := ipv4.NewPacketConn(pc4)
		if err := p4.SetControlMessage(ipv4.FlagDst, true); err != nil {
			pc4.Close()
			return fmt.Errorf("DNS responder: %w", err)
		}
		pc6, err6 := net.ListenPacket("udp6", "[::]:53")
		l, err := net.Listen("tcp", ":53")
		if err != nil {
			pc4.Close()
			return fmt.Errorf("DNS responder: %w", err)
		}
		n.mu.Lock()
		n.closers["udp/53"], n.closers["tcp/53"] = pc4, l
		n.mu.Unlock()
		n.wg.Add(2)
		go n.serveDNSUDP(func(b []byte) (int, net.Addr, net.IP, error) {
			k, cm, from, err := p4.ReadFrom(b)
			var dst net.IP
			if cm != nil {
				dst = cm.Dst
			}
			return k, from, dst, err
		}, func(b []byte, to net.Addr, src net.IP) {
			_, _ = p4.WriteTo(b, &ipv4.ControlMessage{Src: src}, to)
		})
		go n.serveDNSTCP(l)
		if err6 == nil {
			p6 := ipv6.NewPacketConn(pc6)
			if p6.SetControlMessage(ipv6.FlagDst, true) == nil {
				n.mu.Lock()
				n.closers["udp6/53"] = pc6
				n.mu.Unlock()
				n.wg.Add(1)
				go n.serveDNSUDP(func(b []byte) (int, net.Addr, net.IP, error) {
					k, cm, from, err := p6.ReadFrom(b)
					var dst net.IP
					if cm != nil {
						dst = cm.Dst
					}
					return k, from, dst, err
				}, func(b []byte, to net.Addr, src net.IP) {
					_, _ = p6.WriteTo(b, &ipv6.ControlMessage{Src: src}, to)
				})
			} else {
				pc6.Close()
			}
		}
		return nil
	})
}

// ensure opens a sinkhole listener for the destination's port unless one
// exists (or the port is taken, by the sandboxed program itself).
func (n *network) ensure(proto string, dst netip.AddrPort) {
	p := strings.TrimSuffix(proto, "6")
	key := p + "/" + strconv.Itoa(int(dst.Port()))
	n.mu.Lock()
	_, have := n.closers[key]
	closed := n.closed
	n.mu.Unlock()
	if have || closed || dst.Port() == 0 || len(n.closers) >= maxSinkholePorts {
		return
	}
	_ = inNetns(n.nsPath, func() error {
		addr := ":" + strconv.Itoa(int(dst.Port()))
		if p == "udp" {
			// One socket per family, each told the destination of every
			// datagram (IP_PKTINFO), so the event names the address the
			// program sent to.
			port := int(dst.Port())
			pc4, err := net.ListenPacket("udp4", "0.0.0.0"+addr)
			if err != nil {
				return err // the program listens there itself
			}
			p4 := ipv4.NewPacketConn(pc4)
			_ = p4.SetControlMessage(ipv4.FlagDst, true)
			cs := multiCloser{pc4}
			n.wg.Add(1)
			go n.serveUDPSinkhole(port, func(b []byte) (int, net.IP, error) {
				k, cm, _, err := p4.ReadFrom(b)
				if cm == nil {
					return k, nil, err
				}
				return k, cm.Dst, err
			})
			if pc6, err := net.ListenPacket("udp6", "[::]"+addr); err == nil {
				p6 := ipv6.NewPacketConn(pc6)
				_ = p6.SetControlMessage(ipv6.FlagDst, true)
				cs = append(cs, pc6)
				n.wg.Add(1)
				go n.serveUDPSinkhole(port, func(b []byte) (int, net.IP, error) {
					k, cm, _, err := p6.ReadFrom(b)
					if cm == nil {
						return k, nil, err
					}
					return k, cm.Dst, err
				})
			}
			n.mu.Lock()
			n.closers[key] = cs
			n.mu.Unlock()
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		n.mu.Lock()
		n.closers[key] = l
		n.mu.Unlock()
		n.wg.Add(1)
		go n.serveTCPSinkhole(l)
		return nil
	})
}

// release closes a sinkhole listener so the program can bind the port itself.
func (n *network) release(proto string, port int) {
	if port == 53 {
		return
	}
	key := strings.TrimSuffix(proto, "6") + "/" + strconv.Itoa(port)
	n.mu.Lock()
	c, ok := n.closers[key]
	delete(n.closers, key)
	n.mu.Unlock()
	if ok {
		c.Close()
	}
}

func (n *network) close() {
	n.mu.Lock()
	n.closed = true
	cs := n.closers
	n.closers = map[string]io.Closer{}
	n.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
	n.wg.Wait()
}

const (
	firstBytesWait = 2 * time.Second
	// maxSinkholePorts bounds the listeners a port scan can make the
	// supervisor open; connects beyond it are still recorded, then refused.
	maxSinkholePorts = 256
	// maxSinkholeConns bounds connections read at the same time; more are
	// recorded without their first bytes.
	maxSinkholeConns = 128
)

func (n *network) serveTCPSinkhole(l net.Listener) {
	defer n.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		la, _ := netip.ParseAddrPort(c.LocalAddr().String())
		select {
		case n.conns <- struct{}{}:
		default:
			c.Close()
			n.emit(Event{Time: n.since(), Kind: EventSinkhole, Proto: protoOf("tcp", la.Addr()), Addr: la.Addr().Unmap().String(), Port: int(la.Port()), Name: n.nameOf(la.Addr())})
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer func() { <-n.conns }()
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(firstBytesWait))
			buf := make([]byte, FirstBytesMax)
			got := 0
			for got < len(buf) {
				k, err := c.Read(buf[got:])
				got += k
				if err != nil || (got > 0 && k == 0) {
					break
				}
				// Most protocols send a first message and wait: stop at
				// its end instead of waiting out the deadline.
				if got > 0 && k < len(buf[got-k:]) {
					_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				}
			}
			n.emit(Event{Time: n.since(), Kind: EventSinkhole, Proto: protoOf("tcp", la.Addr()), Addr: la.Addr().Unmap().String(), Port: int(la.Port()),
				Name: n.nameOf(la.Addr()), Data: append([]byte(nil), buf[:got]...)})
		}()
	}
}

func (n *network) serveUDPSinkhole(port int, read func([]byte) (int, net.IP, error)) {
	defer n.wg.Done()
	buf := make([]byte, 65536)
	for {
		k, dstIP, err := read(buf)
		if err != nil {
			return
		}
		if k > FirstBytesMax {
			k = FirstBytesMax
		}
		dst, _ := netip.AddrFromSlice(dstIP)
		e := Event{Time: n.since(), Kind: EventSinkhole, Proto: "udp", Port: port, Data: append([]byte(nil), buf[:k]...)}
		if dst.IsValid() {
			e.Addr, e.Name, e.Proto = dst.Unmap().String(), n.nameOf(dst), protoOf("udp", dst)
		}
		n.emit(e)
	}
}

// protoOf adds "6" for IPv6 destinations (not IPv4 ones seen through a
// dual-stack socket).
func protoOf(p string, a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return p + "6"
	}
	return p
}

// multiCloser closes the sockets of one sinkhole port.
type multiCloser []io.Closer

func (m multiCloser) Close() error {
	for _, c := range m {
		c.Close()
	}
	return nil
}

func (n *network) serveDNSUDP(read func([]byte) (int, net.Addr, net.IP, error), write func([]byte, net.Addr, net.IP)) {
	defer n.wg.Done()
	buf := make([]byte, 4096)
	for {
		k, from, dst, err := read(buf)
		if err != nil {
			return
		}
		resp, q, ok := answerDNS(buf[:k], n.addressFor)
		if !ok {
			continue
		}
		n.emit(Event{Time: n.since(), Kind: EventDNS, Proto: "udp", Name: q.name, QType: q.qtype, Addr: q.answer})
		write(resp, from, dst)
	}
}

func (n *network) serveDNSTCP(l net.Listener) {
	defer n.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer c.Close()
			for i := 0; i < 16; i++ { // a client may send a few queries on one connection
				_ = c.SetDeadline(time.Now().Add(firstBytesWait))
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				resp, q, ok := answerDNS(msg, n.addressFor)
				if !ok {
					return
				}
				n.emit(Event{Time: n.since(), Kind: EventDNS, Proto: "tcp", Name: q.name, QType: q.qtype, Addr: q.answer})
				out := make([]byte, 2+len(resp))
				binary.BigEndian.PutUint16(out, uint16(len(resp)))
				copy(out[2:], resp)
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		}()
	}
}

// sandboxHosts and sandboxResolv are written into the sandbox's /etc.
const sandboxResolv = "nameserver 127.0.0.53\noptions ndots:0 attempts:1 timeout:2\n"

// sandboxHostname looks like a container's: 12 hex digits, new every run.
func sandboxHostname() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func sandboxHosts(hostname string) string {
	return "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname + "\n"
}
