package web

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"time"
)

// Firmware is the firmware store and update jobs as the API sees them
// (adapters/ota.Manager implements it; web does not import adapters).
// Every method is safe for concurrent use and returns quickly. Errors that
// carry an HTTP status (an HTTPStatus() int method) are answered with it and
// their text; others are 500.
type Firmware interface {
	UploadFirmware(body io.Reader) (any, error)
	ListFirmware() any
	DeleteFirmware(sha256 string) error
	StartJob(firmware string, devices []string, parallel int) (string, error)
	JobView(id string) (any, bool)
	JobList() any
	CancelJob(id string) (any, error)
	// OpenDownload checks a board's download (job, device, the URL's last
	// element, the request's remote address and x-ESP32-STA-MAC header).
	OpenDownload(job, device, file, remoteAddr, mac string) (Download, error)
}

// Download is an image being served to a board.
type Download interface {
	io.ReadSeekCloser
	Info() (name string, modTime time.Time)
}

// maxFirmwareBody bounds an upload: an 8 MiB image plus a multipart
// envelope; the store itself refuses an image over 8 MiB.
const maxFirmwareBody = 8<<20 + 64<<10

func (s *Server) routeFirmware(fw Firmware) {
	if fw == nil {
		unavailable := func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusServiceUnavailable, "firmware updates are not available (the firmware store could not be opened; see the log)")
		}
		s.mux.Handle("/api/firmware", s.requireToken(http.HandlerFunc(unavailable)))
		s.mux.Handle("/api/firmware/", s.requireToken(http.HandlerFunc(unavailable)))
		s.mux.Handle("/api/ota", s.requireToken(http.HandlerFunc(unavailable)))
		s.mux.Handle("/api/ota/", s.requireToken(http.HandlerFunc(unavailable)))
		return
	}
	h := firmwareHandlers{fw}
	s.mux.Handle("POST /api/firmware", s.requireAdmin("upload firmware", http.HandlerFunc(h.upload)))
	s.mux.Handle("GET /api/firmware", s.requireToken(http.HandlerFunc(h.list)))
	s.mux.Handle("DELETE /api/firmware/{sha256}", s.requireAdmin("delete firmware", http.HandlerFunc(h.delete)))
	s.mux.Handle("POST /api/ota", s.requireAdmin("start updates", http.HandlerFunc(h.start)))
	s.mux.Handle("GET /api/ota", s.requireToken(http.HandlerFunc(h.jobs)))
	s.mux.Handle("GET /api/ota/{job}", s.requireToken(http.HandlerFunc(h.job)))
	s.mux.Handle("DELETE /api/ota/{job}", s.requireAdmin("cancel updates", http.HandlerFunc(h.cancel)))
	// Boards fetch their image here: no session, the URL's secret part
	// authenticates (and is bound to the board, the job and 10 minutes).
	s.mux.HandleFunc("GET /ota/{job}/{device}/{file}", h.download)
}

type firmwareHandlers struct{ fw Firmware }

func writeFirmwareError(w http.ResponseWriter, err error) {
	var st interface{ HTTPStatus() int }
	if errors.As(err, &st) {
		if st.HTTPStatus() == http.StatusBadRequest {
			// The reason, also under "reason" for clients that look there.
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error(), "reason": err.Error()})
			return
		}
		writeError(w, st.HTTPStatus(), err.Error())
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		msg := "not a valid ESP32 app image: larger than the 8 MiB an image may have"
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg, "reason": msg})
		return
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}

// upload takes the image as the raw body (application/octet-stream), or as
// the first file of a multipart/form-data body (a browser's FormData).
func (h firmwareHandlers) upload(w http.ResponseWriter, r *http.Request) {
	body := io.Reader(http.MaxBytesReader(w, r.Body, maxFirmwareBody))
	if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "multipart/form-data" {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "multipart body without a file part", "reason": "multipart body without a file part"})
				return
			}
			if p.FileName() != "" {
				body = p
				break
			}
		}
	}
	res, err := h.fw.UploadFirmware(body)
	if err != nil {
		writeFirmwareError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (h firmwareHandlers) list(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.fw.ListFirmware())
}

func (h firmwareHandlers) delete(w http.ResponseWriter, r *http.Request) {
	if err := h.fw.DeleteFirmware(r.PathValue("sha256")); err != nil {
		writeFirmwareError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type otaBody struct {
	Firmware string   `json:"firmware"`
	Devices  []string `json:"devices"`
	Parallel int      `json:"parallel"`
}

func (h firmwareHandlers) start(w http.ResponseWriter, r *http.Request) {
	var b otaBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err := dec.Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, "bad body: want {\"firmware\":SHA256,\"devices\":[…],\"parallel\":N}: "+err.Error())
		return
	}
	if b.Firmware == "" {
		writeError(w, http.StatusBadRequest, "bad body: firmware (the image's sha256) is required")
		return
	}
	id, err := h.fw.StartJob(b.Firmware, b.Devices, b.Parallel)
	if err != nil {
		writeFirmwareError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"job": id})
}

func (h firmwareHandlers) jobs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.fw.JobList())
}

func (h firmwareHandlers) job(w http.ResponseWriter, r *http.Request) {
	v, ok := h.fw.JobView(r.PathValue("job"))
	if !ok {
		writeError(w, http.StatusNotFound, "no such job")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h firmwareHandlers) cancel(w http.ResponseWriter, r *http.Request) {
	v, err := h.fw.CancelJob(r.PathValue("job"))
	if err != nil {
		writeFirmwareError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// download serves a board's image with Content-Length and byte ranges, so
// a board can resume.
func (h firmwareHandlers) download(w http.ResponseWriter, r *http.Request) {
	d, err := h.fw.OpenDownload(r.PathValue("job"), r.PathValue("device"), r.PathValue("file"),
		r.RemoteAddr, r.Header.Get("X-Esp32-Sta-Mac"))
	if err != nil {
		writeFirmwareError(w, err)
		return
	}
	defer d.Close()
	name, mod := d.Info()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, name, mod, d)
}
