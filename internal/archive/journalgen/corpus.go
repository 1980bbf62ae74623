package journalgen

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"candor"
)

// Text is one message text of the corpus, with its language.
type Text struct {
	Lang string
	Text string
}

// ReadCorpus reads a corpus in the TSV form of ../shared/corpus
// (lang, script, snippet; a header line first).
func ReadCorpus(r io.Reader) ([]Text, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var out []Text
	for line := 0; sc.Scan(); line++ {
		if line == 0 {
			continue // the header
		}
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 || f[0] == "" || f[2] == "" {
			return nil, fmt.Errorf("journalgen: corpus line %d: want lang, script and snippet separated by tabs: %w", line+1, candor.ErrInvalid)
		}
		out = append(out, Text{Lang: f[0], Text: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journalgen: corpus: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("journalgen: corpus is empty: %w", candor.ErrInvalid)
	}
	return out, nil
}

// Builtin is the corpus used when no file is given: everyday office
// messages in eight languages and five scripts, written for candor.
var Builtin = []Text{
	{"en", "The quarterly figures are in the shared folder; please check the totals before Friday."},
	{"en", "Can we move the client call to 3pm? The trading desk needs the room at two."},
	{"fr", "La réunion de demain est reportée à jeudi, même heure, même salle."},
	{"fr", "Merci d'envoyer le contrat signé au service juridique avant midi."},
	{"de", "Die Freigabe für die Zahlung liegt vor, bitte heute noch ausführen."},
	{"de", "Ich bin ab Montag im Urlaub; Frau Weber übernimmt die offenen Fälle."},
	{"es", "El informe de riesgos ya está listo, falta solo la firma del director."},
	{"es", "¿Puedes confirmar el importe de la transferencia antes de las cinco?"},
	{"ja", "明日の会議は十時からに変更になりました。資料は共有フォルダにあります。"},
	{"ja", "契約書の最終版を確認してください。修正点は赤字で示しています。"},
	{"zh", "请在周五之前把审计报告发给我，谢谢。"},
	{"zh", "客户已经确认了新的交易条款，我们下午讨论细节。"},
	{"ar", "تم تأجيل الاجتماع إلى يوم الخميس، يرجى تأكيد الحضور."},
	{"ar", "أرسلت لك مسودة العقد، أرجو مراجعتها قبل نهاية اليوم."},
	{"ru", "Отчёт по рискам готов, осталось только согласовать сроки."},
	{"ru", "Пожалуйста, проверьте платёжное поручение до конца дня."},
}
