//go:build linux

package core

import (
	"os"
	"syscall"
)

// Magic numbers of network file systems, from statfs(2).
var networkFSMagic = map[int64]string{
	0x6969:     "NFS",
	0x517B:     "SMB",
	0xFF534D42: "CIFS",
	0xFE534D42: "SMB2",
	0x564C:     "NCP",
	0x5346414F: "AFS",
	0x0BD00BD0: "Lustre",
	0x19830326: "fhgfs",
	0x65735546: "FUSE",
	0x73757245: "Coda",
	0x47504653: "GPFS",
	0x01021994: "tmpfs-shared", // not network; filtered below
}

func isNetworkFS(dir string) (bool, string) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false, ""
	}
	kind, ok := networkFSMagic[int64(st.Type)]
	if !ok || kind == "tmpfs-shared" || kind == "FUSE" {
		// FUSE is usually local (e.g. overlay helpers); tmpfs is local.
		return false, ""
	}
	return true, kind
}

func existsDir(dir string) bool {
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}
