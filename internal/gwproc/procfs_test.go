package gwproc

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

func TestReadStatusAndCPUTime(t *testing.T) {
	st, err := ReadStatus(os.Getpid())
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		t.Skipf("no /proc: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.RSSKB <= 0 || st.HWMKB < st.RSSKB || st.Threads < 1 {
		t.Errorf("ReadStatus(self) = %+v: want RSS > 0, VmHWM >= RSS, at least one thread", st)
	}
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Errorf("CPUTime(self): %v", err)
	}
	if _, err := ReadStatus(-1); err == nil {
		t.Error("ReadStatus(-1) succeeded")
	}
}
