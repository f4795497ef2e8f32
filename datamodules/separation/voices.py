"""Speech synthesis voices of the synthetic separation world: espeak-ng, flite and festival.

The natural-speaker voices are the ones Debian packages (``flite``; ``festival`` with the
``festvox-*`` voices): diphone, cluster-unit and HTS voices built from recordings of real
speakers, which sound much more like recorded speech than espeak-ng's formant synthesis.
Each voice speaks its own language's words. The English festival speakers (kal, kdl = ked,
slt, and flite's kal/slt, the same speakers) are never used for training: they are the
held-out proxy for natural recorded voices.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

ENGINES = ("espeak-ng", "flite", "festival")

_ENGLISH = (
    "the a one two three four five six seven eight nine ten red green blue yellow black white "
    "house tree river stone cloud water fire light night morning evening city garden window "
    "door table paper letter music story friend mother father sister brother teacher doctor "
    "quickly slowly always never often today tomorrow yesterday under over between behind "
    "runs walks sings reads writes opens closes finds keeps takes gives brings makes sees "
    "small large bright quiet happy early late cold warm heavy simple strange ancient golden "
    "seven hundred thousand number answer question problem reason moment picture kitchen "
    "airport station market village mountain island ocean forest winter summer autumn spring"
)
# A few everyday words per language (numbers, home, family, time), so that each voice reads
# text its letter-to-sound rules and lexicon were built for.
_WORDS = {
    "en": _ENGLISH,
    "it": "il la uno due tre quattro cinque sei sette otto nove dieci casa albero fiume pietra "
    "nuvola acqua fuoco luce notte mattina sera città giardino finestra porta tavolo carta "
    "lettera musica storia amico madre padre sorella fratello sempre mai oggi domani ieri "
    "sotto sopra corre cammina canta legge scrive apre chiude trova piccolo grande caldo freddo",
    "cs": "dům strom řeka kámen mrak voda oheň světlo noc ráno večer město zahrada okno dveře "
    "stůl papír dopis hudba příběh přítel matka otec sestra bratr vždy nikdy dnes zítra včera "
    "jeden dva tři čtyři pět šest sedm osm devět deset malý velký teplý studený rychle pomalu",
    "fi": "talo puu joki kivi pilvi vesi tuli valo yö aamu ilta kaupunki puutarha ikkuna ovi "
    "pöytä paperi kirje musiikki tarina ystävä äiti isä sisko veli aina koskaan tänään huomenna "
    "eilen yksi kaksi kolme neljä viisi kuusi seitsemän kahdeksan yhdeksän kymmenen pieni suuri",
    "ru": "дом дерево река камень облако вода огонь свет ночь утро вечер город сад окно дверь "
    "стол бумага письмо музыка история друг мать отец сестра брат всегда никогда сегодня "
    "завтра вчера один два три четыре пять шесть семь восемь девять десять маленький большой",
    "ca": "casa arbre riu pedra núvol aigua foc llum nit matí tarda ciutat jardí finestra porta "
    "taula paper carta música història amic mare pare germana germà sempre mai avui demà ahir "
    "un dos tres quatre cinc sis set vuit nou deu petit gran calent fred",
    "hi": "घर पेड़ नदी पत्थर बादल पानी आग रोशनी रात सुबह शाम शहर बगीचा खिड़की दरवाज़ा मेज़ "
    "कागज़ पत्र संगीत कहानी दोस्त माँ पिता बहन भाई हमेशा आज कल एक दो तीन चार पाँच छह सात आठ "
    "नौ दस छोटा बड़ा गरम ठंडा",
    "mr": "घर झाड नदी दगड ढग पाणी आग प्रकाश रात्र सकाळ संध्याकाळ शहर बाग खिडकी दार टेबल "
    "कागद पत्र संगीत गोष्ट मित्र आई वडील बहीण भाऊ नेहमी आज उद्या काल एक दोन तीन चार पाच "
    "सहा सात आठ नऊ दहा लहान मोठा गरम थंड",
    "te": "ఇల్లు చెట్టు నది రాయి మేఘం నీరు నిప్పు వెలుగు రాత్రి ఉదయం సాయంత్రం నగరం తోట కిటికీ "
    "తలుపు బల్ల కాగితం ఉత్తరం సంగీతం కథ స్నేహితుడు అమ్మ నాన్న అక్క అన్న ఈరోజు రేపు నిన్న "
    "ఒకటి రెండు మూడు నాలుగు ఐదు ఆరు ఏడు ఎనిమిది తొమ్మిది పది చిన్న పెద్ద",
}
WORDS = {lang: tuple(text.split()) for lang, text in _WORDS.items()}
# Festival reads bytes: its Italian, Finnish and Catalan rules expect Latin-1, Czech Latin-2.
FESTIVAL_ENCODING = {"it": "latin-1", "fi": "latin-1", "ca": "latin-1", "cs": "iso-8859-2"}


@dataclass(frozen=True)
class Voice:
    """A synthesis voice: ``engine`` (espeak-ng, flite, festival), its voice ``name`` and the
    ``language`` of the words it reads. ``package`` is the Debian package that provides it."""

    engine: str
    name: str
    language: str = "en"
    package: str = ""

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}"


def festival(name: str, language: str, package: str) -> Voice:
    return Voice("festival", name, language, package)


# Natural-speaker voices used for training (and, disjointly, validation/test).
FLITE_TRAIN = (Voice("flite", "awb", "en", "flite"), Voice("flite", "rms", "en", "flite"))
FESTIVAL_TRAIN = (
    festival("pc_diphone", "it", "festvox-itapc16k"),
    festival("lp_diphone", "it", "festvox-italp16k"),
    festival("czech_dita", "cs", "festvox-czech-dita"),
    festival("czech_machac", "cs", "festvox-czech-machac"),
    festival("czech_krb", "cs", "festvox-czech-krb"),
    festival("hy_fi_mv_diphone", "fi", "festvox-suopuhe-mv"),
    festival("msu_ru_nsh_clunits", "ru", "festvox-ru"),
    festival("upc_ca_ona_hts", "ca", "festvox-ca-ona-hts"),
    festival("hindi_NSK_diphone", "hi", "festvox-hi-nsk"),
    festival("telugu_NSK_diphone", "te", "festvox-te-nsk"),
)
# Natural voices of unheard speakers for validation / test (never trained on).
FESTIVAL_DEV = (festival("czech_ph", "cs", "festvox-czech-ph"),)
FESTIVAL_TEST = (
    festival("suo_fi_lj_diphone", "fi", "festvox-suopuhe-lj"),
    festival("marathi_NSK_diphone", "mr", "festvox-mr-nsk"),
)
# Held out for evaluation only: the English festival speakers (flite's kal/slt are the same).
HELD_OUT_ENGLISH = (
    festival("kal_diphone", "en", "festvox-kallpc16k"),
    festival("ked_diphone", "en", "festvox-kdlpc16k"),
    festival("cmu_us_slt_arctic_hts", "en", "festvox-us-slt-hts"),
    Voice("flite", "kal16", "en", "flite"),
    Voice("flite", "slt", "en", "flite"),
)
# Debian packages giving every voice above (what scripts/system-deps.sh installs).
PACKAGES = (
    "espeak-ng", "flite", "festival", "festival-hi", "festival-mr", "festival-te",
    *sorted({v.package for v in FESTIVAL_TRAIN + FESTIVAL_DEV + FESTIVAL_TEST + HELD_OUT_ENGLISH
             if v.engine == "festival"}),
)  # fmt: skip


def engine_available(engine: str) -> bool:
    return shutil.which("text2wave" if engine == "festival" else engine) is not None


def available(voice: Voice) -> bool:
    """Whether ``voice`` can be synthesised here (engine on PATH, festival voice installed)."""
    if not engine_available(voice.engine):
        return False
    if voice.engine == "festival":
        return any(Path("/usr/share/festival/voices").glob(f"*/{voice.name}"))
    return True


def sentence(rng: np.random.Generator, language: str, words: tuple[int, int]) -> str:
    return " ".join(rng.choice(WORDS[language], size=int(rng.integers(*words))))


def _read(path: Path, sample_rate: int) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    data = data.mean(1)
    g = math.gcd(rate, sample_rate)
    # Polyphase resampling: ~50x faster than torchaudio's sinc kernel for 22050 -> 8000 Hz.
    audio = resample_poly(data, sample_rate // g, rate // g).astype(np.float32)
    nonzero = np.flatnonzero(np.abs(audio) > 1e-3 * max(float(np.abs(audio).max()), 1e-8))
    if len(nonzero):  # trim leading/trailing silence
        audio = audio[int(nonzero[0]) : int(nonzero[-1]) + 1]
    return audio / max(float(np.abs(audio).max()), 1e-8)


def _run(cmd: list[str], voice: Voice) -> None:
    done = subprocess.run(cmd, capture_output=True)
    stderr = done.stderr.decode("utf-8", errors="replace")
    if done.returncode != 0 or "SIOD ERROR" in stderr or "no rule matches" in stderr:
        raise RuntimeError(f"{voice.key} failed: {stderr.strip()[-300:]}")


def synthesize(
    voice: Voice, requests: list[tuple[str, dict]], sample_rate: int
) -> list[np.ndarray]:
    """Speak each ``(text, options)`` with ``voice``; float32 ``(T,)`` arrays at ``sample_rate``,
    peak-normalised, silence trimmed.

    Options: ``pitch`` (espeak-ng 0-99), ``rate`` (words per minute, espeak-ng), ``gap``
    (espeak-ng word gap, 10 ms units), ``stretch`` (duration factor, flite and festival).
    Festival speaks all requests of a voice in one process (its start-up dominates).
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        outs = [tmp / f"{i}.wav" for i in range(len(requests))]
        if voice.engine == "festival":
            lines = [f"(voice_{voice.name})"]
            for (text, opts), out in zip(requests, outs, strict=True):
                lines.append(f"(Parameter.set 'Duration_Stretch {opts.get('stretch', 1.0):.3f})")
                lines.append(f'(set! u (utt.synth (Utterance Text "{text}")))')
                lines.append(f'(utt.save.wave u "{out}" \'riff)')
            script = tmp / "say.scm"
            encoding = FESTIVAL_ENCODING.get(voice.language, "utf-8")
            script.write_text("\n".join(lines) + "\n", encoding=encoding)
            _run(["festival", "-b", str(script)], voice)
        else:
            for (text, opts), out in zip(requests, outs, strict=True):
                if voice.engine == "flite":
                    stretch = f"duration_stretch={opts.get('stretch', 1.0):.3f}"
                    cmd = ["flite", "-voice", voice.name, "--setf", stretch, "-t", text, "-o"]
                    _run([*cmd, str(out)], voice)
                else:
                    cmd = [
                        "espeak-ng", "-v", voice.name, "-p", str(opts.get("pitch", 50)),
                        "-g", str(opts.get("gap", 0)), "-s", str(opts.get("rate", 160)),
                        "-w", str(out), text,
                    ]  # fmt: skip
                    _run(cmd, voice)
        missing = [o.name for o in outs if not o.is_file()]
        if missing:
            raise RuntimeError(f"{voice.key} wrote no audio for {len(missing)} request(s)")
        return [_read(o, sample_rate) for o in outs]
