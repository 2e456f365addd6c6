//go:build windows

package core

import (
	"os"
	"path/filepath"
	"syscall"
	"unsafe"
)

var procGetDriveTypeW = syscall.NewLazyDLL("kernel32.dll").NewProc("GetDriveTypeW")

const driveRemote = 4 // DRIVE_REMOTE

func isNetworkFS(dir string) (bool, string) {
	vol := filepath.VolumeName(dir)
	if vol == "" {
		return false, ""
	}
	root, err := syscall.UTF16PtrFromString(vol + `\`)
	if err != nil {
		return false, ""
	}
	r, _, _ := procGetDriveTypeW.Call(uintptr(unsafe.Pointer(root)))
	if r == driveRemote {
		return true, "mapped network drive"
	}
	return false, ""
}

func existsDir(dir string) bool {
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}
