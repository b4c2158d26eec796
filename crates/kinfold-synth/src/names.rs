//! Invented names, in the mix of an English town: English, Polish (with diacritics), South
//! Asian, Romanian and Somali families. None is taken from the serious case review.

/// A family's naming tradition, and the language they prefer if not English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Culture {
    English,
    Polish,
    SouthAsian,
    Romanian,
    Somali,
}

impl Culture {
    pub(crate) fn language(self) -> Option<&'static str> {
        match self {
            Culture::English => None,
            Culture::Polish => Some("pl"),
            Culture::SouthAsian => Some("ur"),
            Culture::Romanian => Some("ro"),
            Culture::Somali => Some("so"),
        }
    }
}

pub(crate) fn culture(rng: &mut fastrand::Rng) -> Culture {
    match rng.u8(0..20) {
        0..=10 => Culture::English,
        11..=14 => Culture::Polish,
        15..=16 => Culture::SouthAsian,
        17..=18 => Culture::Romanian,
        _ => Culture::Somali,
    }
}

pub(crate) fn given(culture: Culture, gender: &str, rng: &mut fastrand::Rng) -> &'static str {
    let female = gender == "female";
    let list: &[&str] = match (culture, female) {
        (Culture::English, true) => &[
            "Amelia", "Olivia", "Isla", "Ava", "Freya", "Lily", "Poppy", "Evie", "Grace", "Ruby",
            "Holly", "Chloe",
        ],
        (Culture::English, false) => &[
            "Oliver", "George", "Harry", "Noah", "Jack", "Leo", "Oscar", "Alfie", "Charlie",
            "Freddie", "Thomas", "Jacob",
        ],
        (Culture::Polish, true) => &[
            "Zofia",
            "Łucja",
            "Małgorzata",
            "Agnieszka",
            "Zuzanna",
            "Wiktoria",
            "Jadwiga",
            "Bożena",
            "Grażyna",
            "Kasia",
        ],
        (Culture::Polish, false) => &[
            "Bartłomiej",
            "Wojciech",
            "Józef",
            "Stanisław",
            "Jędrzej",
            "Mikołaj",
            "Paweł",
            "Łukasz",
            "Grzegorz",
            "Jakub",
        ],
        (Culture::SouthAsian, true) => &[
            "Aisha", "Fatima", "Maryam", "Zara", "Inaya", "Hafsa", "Amira", "Sana",
        ],
        (Culture::SouthAsian, false) => &[
            "Muhammad", "Ibrahim", "Yusuf", "Zayn", "Omar", "Hamza", "Ayaan", "Bilal",
        ],
        (Culture::Romanian, true) => &[
            "Ioana",
            "Andreea",
            "Ștefania",
            "Mădălina",
            "Elena",
            "Bianca",
        ],
        (Culture::Romanian, false) => {
            &["Andrei", "Ștefan", "Mihai", "Răzvan", "Ionuț", "Alexandru"]
        }
        (Culture::Somali, true) => &["Hodan", "Ayaan", "Sahra", "Nimco", "Ifrah", "Hibo"],
        (Culture::Somali, false) => &["Abdi", "Liban", "Guled", "Mahad", "Yasin", "Khalid"],
    };
    list[rng.usize(0..list.len())]
}

/// A family name in its male and female forms (they differ in Polish).
pub(crate) fn family(culture: Culture, rng: &mut fastrand::Rng) -> (&'static str, &'static str) {
    let list: &[(&str, &str)] = match culture {
        Culture::English => &[
            ("Ashworth", "Ashworth"),
            ("Brennan", "Brennan"),
            ("Calder", "Calder"),
            ("Dunmore", "Dunmore"),
            ("Fairley", "Fairley"),
            ("Hartwell", "Hartwell"),
            ("Kettering", "Kettering"),
            ("Lowther", "Lowther"),
            ("Marsden", "Marsden"),
            ("Pendle", "Pendle"),
            ("Rowntree", "Rowntree"),
            ("Thornbury", "Thornbury"),
        ],
        Culture::Polish => &[
            ("Wiśniewski", "Wiśniewska"),
            ("Wójcik", "Wójcik"),
            ("Kowalczyk", "Kowalczyk"),
            ("Dąbrowski", "Dąbrowska"),
            ("Zieliński", "Zielińska"),
            ("Mazur", "Mazur"),
            ("Krawczyk", "Krawczyk"),
            ("Sołtys", "Sołtys"),
            ("Grabowski", "Grabowska"),
            ("Pawłowski", "Pawłowska"),
        ],
        Culture::SouthAsian => &[
            ("Qureshi", "Qureshi"),
            ("Chaudhry", "Chaudhry"),
            ("Malik", "Malik"),
            ("Siddiqui", "Siddiqui"),
            ("Rahman", "Rahman"),
        ],
        Culture::Romanian => &[
            ("Popescu", "Popescu"),
            ("Ionescu", "Ionescu"),
            ("Stănescu", "Stănescu"),
            ("Dumitrescu", "Dumitrescu"),
        ],
        Culture::Somali => &[
            ("Farah", "Farah"),
            ("Warsame", "Warsame"),
            ("Jama", "Jama"),
            ("Hersi", "Hersi"),
        ],
    };
    list[rng.usize(0..list.len())]
}
