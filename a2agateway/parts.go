package a2agateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"

	"github.com/agentgov/agentgov/errcode"
)

// filesKey is the argument under which a message's file parts are
// described to policies: name, mimeType, uri and the size of inline bytes.
const filesKey = "_files"

// input is what policies see of some parts: their text as content, their
// data as args.
type input struct {
	texts []string
	args  map[string]any
	files []any
}

func (in *input) content() string { return strings.Join(in.texts, "\n") }

func (in *input) arguments() map[string]any {
	if len(in.files) > 0 {
		if in.args == nil {
			in.args = map[string]any{}
		}
		in.args[filesKey] = in.files
	}
	return in.args
}

func (in *input) empty() bool { return len(in.texts) == 0 && len(in.args) == 0 && len(in.files) == 0 }

// add reads parts into in and returns their size in bytes (text, data as
// JSON, file bytes decoded). where names the parts in errors. A file
// part's inline bytes past maxFile, bytes that are not base64, or two
// data parts that give one key two values are refused: a policy must
// never decide on something other than what the upstream will read.
func (in *input) add(parts a2a.ContentParts, where string, maxFile int64) (int64, *errcode.Error) {
	var size int64
	for i, p := range parts {
		at := fmt.Sprintf("%s.parts[%d]", where, i)
		switch p := p.(type) {
		case a2a.TextPart:
			in.texts = append(in.texts, p.Text)
			size += int64(len(p.Text))
		case *a2a.TextPart:
			in.texts = append(in.texts, p.Text)
			size += int64(len(p.Text))
		case a2a.DataPart:
			n, err := in.addData(p.Data, at)
			if err != nil {
				return 0, err
			}
			size += n
		case *a2a.DataPart:
			n, err := in.addData(p.Data, at)
			if err != nil {
				return 0, err
			}
			size += n
		case a2a.FilePart:
			n, err := in.addFile(p, at, maxFile)
			if err != nil {
				return 0, err
			}
			size += n
		case *a2a.FilePart:
			n, err := in.addFile(*p, at, maxFile)
			if err != nil {
				return 0, err
			}
			size += n
		default:
			return 0, errcode.Errorf(errcode.BadRequest, "%s: a part of unknown kind", at)
		}
	}
	return size, nil
}

func (in *input) addData(data map[string]any, at string) (int64, *errcode.Error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return 0, errcode.Errorf(errcode.BadRequest, "%s: data cannot be encoded: %v", at, err)
	}
	if in.args == nil {
		in.args = map[string]any{}
	}
	for k, v := range data {
		if k == filesKey {
			return 0, errcode.Errorf(errcode.BadRequest, "%s: data key %q is kept for the description of file parts", at, k)
		}
		if prev, ok := in.args[k]; ok && !reflect.DeepEqual(prev, v) {
			return 0, errcode.Errorf(errcode.BadRequest, "%s: data key %q is given another value by an earlier part; policies read the data parts as one object, so send one value", at, k)
		}
		in.args[k] = v
	}
	return int64(len(raw)), nil
}

func (in *input) addFile(p a2a.FilePart, at string, maxFile int64) (int64, *errcode.Error) {
	desc := map[string]any{}
	var size int64
	switch f := p.File.(type) {
	case a2a.FileBytes:
		desc["name"], desc["mimeType"] = f.Name, f.MimeType
		if int64(base64.StdEncoding.DecodedLen(len(f.Bytes))) > maxFile+3 {
			return 0, errcode.Errorf(errcode.TooLarge, "%s: the file's inline bytes are over the limit of %d bytes (a2a.max_file_bytes)", at, maxFile)
		}
		b, err := decodeBase64(f.Bytes)
		if err != nil {
			return 0, errcode.Errorf(errcode.BadRequest, "%s: the file's bytes are not base64: %v", at, err)
		}
		if int64(len(b)) > maxFile {
			return 0, errcode.Errorf(errcode.TooLarge, "%s: the file's inline bytes are over the limit of %d bytes (a2a.max_file_bytes)", at, maxFile)
		}
		size = int64(len(b))
		desc["bytes"] = size
	case a2a.FileURI:
		desc["name"], desc["mimeType"], desc["uri"] = f.Name, f.MimeType, f.URI
	default:
		return 0, errcode.Errorf(errcode.BadRequest, "%s: a file part with neither bytes nor uri", at)
	}
	in.files = append(in.files, desc)
	return size, nil
}

func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// messageInput reads a caller's message.
func messageInput(m *a2a.Message, maxFile int64) (*input, *errcode.Error) {
	in := &input{}
	if _, err := in.add(m.Parts, "message", maxFile); err != nil {
		return nil, err
	}
	return in, nil
}

// replyInput reads what a reply gives the caller: a message, or a task's
// status message, artifacts and history. The history's turns in the
// caller's name are read too: the gateway cannot tell the caller's own
// words from words the upstream put in its mouth. Each artifact is
// bounded as a whole.
func replyInput(ev a2a.Event, maxFile, maxArtifact int64) (*input, *errcode.Error) {
	in := &input{}
	addMsg := func(m *a2a.Message, where string) *errcode.Error {
		if m == nil {
			return nil
		}
		_, err := in.add(m.Parts, where, maxFile)
		return err
	}
	addArtifact := func(a *a2a.Artifact, where string) *errcode.Error {
		if a == nil {
			return nil
		}
		n, err := in.add(a.Parts, where, maxFile)
		if err != nil {
			return err
		}
		if n > maxArtifact {
			return errcode.Errorf(errcode.TooLarge, "%s (artifact %q) is %d bytes, over the limit of %d (a2a.max_artifact_bytes)", where, a.ID, n, maxArtifact)
		}
		return nil
	}
	switch e := ev.(type) {
	case *a2a.Message:
		if _, err := in.add(e.Parts, "message", maxFile); err != nil {
			return nil, err
		}
	case *a2a.Task:
		if err := addMsg(e.Status.Message, "task.status.message"); err != nil {
			return nil, err
		}
		for i, a := range e.Artifacts {
			if err := addArtifact(a, fmt.Sprintf("task.artifacts[%d]", i)); err != nil {
				return nil, err
			}
		}
		for i, m := range e.History {
			if err := addMsg(m, fmt.Sprintf("task.history[%d]", i)); err != nil {
				return nil, err
			}
		}
	case *a2a.TaskStatusUpdateEvent:
		if err := addMsg(e.Status.Message, "status.message"); err != nil {
			return nil, err
		}
	case *a2a.TaskArtifactUpdateEvent:
		if err := addArtifact(e.Artifact, "artifact"); err != nil {
			return nil, err
		}
	}
	return in, nil
}
