package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// credential is the image user the entrypoint runs as.
type credential struct {
	uid, gid uint32
	groups   []uint32
	home     string
}

// resolveUser turns the image config's User ("", "uid", "uid:gid", "name",
// "name:group") into ids, reading /etc/passwd and /etc/group of the rootfs
// (resolved inside it: a hostile image cannot point them at host files).
func resolveUser(rootfs, user string) (credential, error) {
	c := credential{home: "/"}
	if user == "" {
		user = "0"
	}
	name, group, hasGroup := strings.Cut(user, ":")
	passwd := readRootFile(rootfs, "etc/passwd")
	groups := readRootFile(rootfs, "etc/group")
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		c.uid, c.gid = uint32(n), uint32(n)
		if e := findEntry(passwd, 2, name); e != nil {
			if g, err := strconv.ParseUint(e[3], 10, 32); err == nil {
				c.gid = uint32(g)
			}
			c.home = e[5]
		} else if n == 0 {
			c.gid, c.home = 0, "/root"
		}
	} else {
		e := findEntry(passwd, 0, name)
		if e == nil {
			return c, fmt.Errorf("image user %q is not in the image's /etc/passwd: set the user as uid[:gid]", name)
		}
		u, err1 := strconv.ParseUint(e[2], 10, 32)
		g, err2 := strconv.ParseUint(e[3], 10, 32)
		if err1 != nil || err2 != nil {
			return c, fmt.Errorf("image user %q has a malformed /etc/passwd entry", name)
		}
		c.uid, c.gid, c.home = uint32(u), uint32(g), e[5]
	}
	if hasGroup {
		if n, err := strconv.ParseUint(group, 10, 32); err == nil {
			c.gid = uint32(n)
		} else {
			e := findEntry(groups, 0, group)
			if e == nil {
				return c, fmt.Errorf("image group %q is not in the image's /etc/group: set the user as uid:gid", group)
			}
			n, err := strconv.ParseUint(e[2], 10, 32)
			if err != nil {
				return c, fmt.Errorf("image group %q has a malformed /etc/group entry", group)
			}
			c.gid = uint32(n)
		}
	}
	c.groups = []uint32{c.gid}
	if c.home == "" {
		c.home = "/"
	}
	return c, nil
}

// readRootFile reads a small file of the rootfs with every path component
// resolved inside it; a missing or oversized file reads as empty.
func readRootFile(rootfs, rel string) []byte {
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, rel, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return b
}

// findEntry finds the colon-separated line whose field idx equals v.
func findEntry(b []byte, idx int, v string) []string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 7 || (len(f) >= 3 && idx <= 2) {
			if len(f) > idx && f[idx] == v {
				for len(f) < 7 {
					f = append(f, "")
				}
				return f
			}
		}
	}
	return nil
}

// imageEnv is the image's environment with the defaults a container
// runtime adds (PATH, HOSTNAME, HOME) where the image has none.
func imageEnv(env []string, home, hostname string) []string {
	out := []string{}
	have := map[string]bool{}
	for _, e := range env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			continue
		}
		have[k] = true
		out = append(out, e)
	}
	if !have["PATH"] {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if !have["HOSTNAME"] {
		out = append(out, "HOSTNAME="+hostname)
	}
	if !have["HOME"] {
		out = append(out, "HOME="+home)
	}
	return out
}
